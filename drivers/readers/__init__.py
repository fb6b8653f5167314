"""Card readers, chosen by URL (see base.py for the protocol and events)."""
