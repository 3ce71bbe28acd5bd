"""Datasets prepared offline from data that ships inside packages."""
