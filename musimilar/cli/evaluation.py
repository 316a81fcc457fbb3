"""Commands that measure the model on the user's own labels: evaluate, classify."""
