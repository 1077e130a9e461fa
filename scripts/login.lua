-- wrk script: a login with the load-test user's credentials per request.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"email":"load@example.com","password":"correct horse battery"}'
