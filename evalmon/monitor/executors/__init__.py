"""Executors run the monitor's pipeline stages over (window, partition): ``local`` on this machine."""
