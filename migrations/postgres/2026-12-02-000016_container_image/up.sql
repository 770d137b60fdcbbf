-- Which catalogue entry a container runs (jupyterlab, terminal, vscode, custom): its agent
-- starts that app. Copied from the project document at the first enrollment token.
ALTER TABLE containers ADD COLUMN image TEXT NOT NULL DEFAULT 'custom';
