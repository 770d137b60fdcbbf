DROP TABLE doc_history;
DROP TABLE doc_snapshots;
