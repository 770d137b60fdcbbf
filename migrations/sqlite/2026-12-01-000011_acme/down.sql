DROP TABLE acme_certificates;
DROP TABLE acme_accounts;
