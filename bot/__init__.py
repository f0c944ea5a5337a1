"""Space Ops: run Hugging Face Spaces from Slack."""
