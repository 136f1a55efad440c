"""The core: runs, tracker, ledger, events, tools and integrations. Never imports Flask."""
