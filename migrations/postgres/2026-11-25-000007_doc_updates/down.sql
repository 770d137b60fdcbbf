DROP TABLE doc_updates;
