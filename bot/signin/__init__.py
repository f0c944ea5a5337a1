"""Signing in with Hugging Face: a Slack user's link to their Hub account, whose org roles decide rights."""
