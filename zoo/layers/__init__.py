"""Shared building blocks, one module per topic (``zoo.layers.conv``, ...)."""
