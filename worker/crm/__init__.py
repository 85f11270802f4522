"""CRM adapters (Salesforce on simple-salesforce) behind one port."""
