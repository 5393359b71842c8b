"""Small reusable widgets: confirmation and error modals, endpoint rows."""
