"""Image (and text) encoders with their preprocessing and similarity; see reprl.encoders.registry."""
