"""The release of the LIMS (one place: the package, its API and DRS service-info)."""

__version__ = "0.1.0"
