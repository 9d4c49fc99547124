module baselinewebhook

go 1.22
