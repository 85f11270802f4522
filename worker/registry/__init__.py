"""Business-registry providers (Proff, Brønnøysund) behind one port, mapping to the canonical Company."""
