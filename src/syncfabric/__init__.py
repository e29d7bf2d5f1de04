"""syncfabric: the synchronization fabric between a manufacturer's ERPs, plant systems and its planning platform."""

__version__ = "0.1.0"
