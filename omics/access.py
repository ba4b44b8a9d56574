"""Who may see an omics file or an image, and so its bytes through DRS.

- Administrators: everything.
- Biobank staff: a file every linked sample of which belongs to their sites (a file that
  would show another site's samples is not theirs to read), or that they uploaded. Images
  follow ``biobank.services.images.image_clause``.
- Researchers: only the objects of a snapshot named by an approved request of theirs, while
  the approval's data access lasts; a file only when every one of its samples is such an
  object (a multi-sample VCF also holds other people's genotypes).
Anything else is "not found", so ids of other sites' data are not revealed.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from biobank.auth import visible_site_ids
from biobank.db import db
from biobank.errors import NotFound
from biobank.models import CohortSnapshotObject, Specimen
from biobank.models.users import Actor
from biobank.models.vocab import Role
from biobank.services.cohorts import granted_snapshot_ids
from omics.models import OmicsFile, OmicsFileSample


def _staff_file_clause(actor: Actor, sites: set[int]) -> Any:
    samples = sa.select(OmicsFileSample.id).where(OmicsFileSample.file_id == OmicsFile.id)
    foreign = (
        sa.select(OmicsFileSample.id)
        .join(Specimen, Specimen.id == OmicsFileSample.specimen_id)
        .where(OmicsFileSample.file_id == OmicsFile.id, Specimen.site_id.not_in(sorted(sites) or [-1]))
    )
    unlinked = samples.where(OmicsFileSample.specimen_id.is_(None))
    own = sa.and_(sa.exists(samples), ~sa.exists(foreign), ~sa.exists(unlinked))
    return sa.or_(own, OmicsFile.created_by == actor.username)


def _researcher_file_clause(actor: Actor) -> Any:
    granted = sa.select(CohortSnapshotObject.object_id).where(
        CohortSnapshotObject.kind == "omics",
        CohortSnapshotObject.snapshot_id.in_(granted_snapshot_ids(actor)),
    )
    samples = sa.select(OmicsFileSample.id).where(OmicsFileSample.file_id == OmicsFile.id)
    return sa.and_(sa.exists(samples), ~sa.exists(samples.where(OmicsFileSample.id.not_in(granted))))


def file_clause(actor: Actor) -> Any:
    """A WHERE clause over ``omics_files``: the files *actor* may see."""
    if actor.role is Role.ADMIN:
        return sa.true()
    if actor.role is Role.RESEARCHER:
        return _researcher_file_clause(actor)
    return _staff_file_clause(actor, visible_site_ids(actor) or set())


def visible_file(record: OmicsFile | None, actor: Actor, *, what: str = "omics file") -> OmicsFile:
    """*record* if *actor* may see it, else ``NotFound``."""
    if record is None or not db.session.scalar(
        sa.select(sa.exists().where(OmicsFile.id == record.id, file_clause(actor)))
    ):
        raise NotFound(f"no {what} {record.id if record else ''}".strip())
    return record
