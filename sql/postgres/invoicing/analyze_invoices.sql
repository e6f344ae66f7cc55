-- purpose: refresh the planner's statistics of invoices after a run opened many new drafts
ANALYZE invoices
