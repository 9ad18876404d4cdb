"""The Dash dashboard: timeline beside a linked roofline, with findings."""
