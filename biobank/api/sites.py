"""Sites API."""

from __future__ import annotations

from flask_smorest import Blueprint

from biobank.api.crud import Resource, register_crud
from biobank.auth import ALL_ROLES
from biobank.models import Site
from biobank.models.vocab import Role
from biobank.schemas.sites import (
    SiteCreateSchema,
    SiteQueryArgsSchema,
    SiteSchema,
    SiteUpdateSchema,
)
from biobank.services import sites

blp = Blueprint("sites", __name__, description="Hospitals and laboratories of the network")

register_crud(
    Resource(
        blp=blp,
        model=Site,
        noun="site",
        schema=SiteSchema,
        create_schema=SiteCreateSchema,
        update_schema=SiteUpdateSchema,
        query_schema=SiteQueryArgsSchema,
        list_query=sites.list_sites,
        create=sites.create_site,
        update=sites.update_site,
        read_roles=ALL_ROLES,
        write_roles=(Role.ADMIN,),
    )
)
