"""Name matching: find the org number of a CRM record that has none, by its company name and country."""
