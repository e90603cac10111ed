"""The staff desk: decisions (CLI, workbook, mail), the queue report, scheduled jobs, staff
accounts and the web desk (web/, one more face of the same desk)."""
