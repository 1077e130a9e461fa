//! PLACEHOLDER for the lead's local build only: the mail helper's module
//! replaces this file at merge. Writes each message into `<data dir>/outbox/`.

use std::path::PathBuf;
use tessera_core::{Email, TenantSlug};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    EmailVerification,
    PasswordReset,
    PasswordChanged,
}

pub struct Mail {
    pub to: Email,
    pub kind: MailKind,
    pub first_name: String,
    pub tenant_name: String,
    pub link: Option<String>,
}

#[derive(Clone)]
pub struct Mailer {
    outbox: PathBuf,
    link_base: String,
}

impl Mailer {
    pub fn outbox(outbox: PathBuf, link_base: String) -> Self {
        Self { outbox, link_base }
    }

    pub fn send(&self, mail: Mail) {
        let dir = self.outbox.clone();
        tokio::task::spawn_blocking(move || {
            let _ = std::fs::create_dir_all(&dir);
            let name = format!("{}.eml", uuid::Uuid::new_v4());
            let body = format!(
                "To: {}\r\nSubject: {:?}\r\n\r\nHello {} ({})\r\n{}\r\n",
                mail.to.as_str(),
                mail.kind,
                mail.first_name,
                mail.tenant_name,
                mail.link.unwrap_or_default()
            );
            let _ = std::fs::write(dir.join(name), body);
        });
    }

    pub fn link(&self, kind: MailKind, token: &str, tenant_slug: &TenantSlug) -> String {
        let path = match kind {
            MailKind::PasswordReset => "reset-password",
            _ => "verify-email",
        };
        let mut link = format!("{}/{path}?token={token}", self.link_base);
        if !tenant_slug.is_default() {
            link.push_str("&tenant=");
            link.push_str(tenant_slug.as_str());
        }
        link
    }
}
