"""Receipt message catalogs (gettext .po), one per locale; package data."""
