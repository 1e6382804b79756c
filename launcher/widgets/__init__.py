"""Small widgets of the launcher, each showing one thing."""
