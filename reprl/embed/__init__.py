"""`reprl embed`: videos + a goal -> embeddings, values, rewards, a plot and a summary."""
