"""dahjax: deep supervised hashing for image retrieval in JAX (DAH and DPFAH)."""

__version__ = '0.1.0'
