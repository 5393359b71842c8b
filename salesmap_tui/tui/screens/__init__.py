"""One screen per file: dashboard, resume, restore, web forms, history, help."""
