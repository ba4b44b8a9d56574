"""Omics in cohort snapshots: omics samples as a kind of snapshot object (registered with
biobank's cohort services) and a snapshot's matrices exported as MuData."""

from __future__ import annotations

import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any, NamedTuple

import sqlalchemy as sa
from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint

from biobank.auth import ALL_ROLES, MANAGERS, current_actor, has_role, roles_required
from biobank.cohort_objects import ObjectKind
from biobank.db import db
from biobank.errors import Conflict, PermissionDenied
from biobank.models import CohortSnapshot, CohortSnapshotObject, Participant, Specimen
from biobank.schemas.cohorts import MuDataArgsSchema
from biobank.services import cohorts
from omics.models import FileStatus, OmicsFile, OmicsFileSample
from omics.services import storage_root

KIND = "omics"


def _of_specimens(match: sa.ColumnElement[bool], parent: Any) -> sa.Select[Any]:
    """The samples (of files not failed) whose aliquot satisfies *match*."""
    return (
        sa.select(OmicsFileSample.id)
        .join(OmicsFile, OmicsFile.id == OmicsFileSample.file_id)
        .join(Specimen, Specimen.id == OmicsFileSample.specimen_id)
        .outerjoin(parent, parent.id == Specimen.parent_id)
        .where(OmicsFile.status != FileStatus.FAILED, match)
    )


def _rows(ids: list[int]) -> list[Any]:
    """Each sample's manifest facts: the file's kind as modality, ``file#sample`` as name."""
    parent = sa.orm.aliased(Specimen)
    stmt = (
        sa.select(
            OmicsFileSample.id,
            OmicsFile.kind,
            OmicsFile.filename,
            OmicsFile.size_bytes,
            OmicsFile.sha256,
            OmicsFileSample.sample_name,
            Specimen.barcode,
            Specimen.lineage,
            parent.barcode.label("parent_barcode"),
            Specimen.participant_id,
            Specimen.case_id,
            Specimen.lesion_id,
        )
        .join(OmicsFile, OmicsFile.id == OmicsFileSample.file_id)
        .join(Specimen, Specimen.id == OmicsFileSample.specimen_id)
        .outerjoin(parent, parent.id == Specimen.parent_id)
        .where(OmicsFileSample.id.in_(ids))
    )
    return [
        _Row(
            r.id,
            r.kind.value,
            f"{r.filename}#{r.sample_name}",
            r.size_bytes,
            r.sha256,
            r.barcode,
            r.lineage,
            r.parent_barcode,
            r.participant_id,
            r.case_id,
            r.lesion_id,
        )
        for r in db.session.execute(stmt)
    ]


class _Row(NamedTuple):
    id: int
    modality: str
    name: str
    size_bytes: int
    sha256: str
    barcode: str | None
    lineage: Any
    parent_barcode: str | None
    participant_id: int
    case_id: int | None
    lesion_id: int | None


def _site_ids(objects: sa.Select[Any]) -> sa.Select[Any]:
    return (
        sa.select(Specimen.site_id)
        .join(OmicsFileSample, OmicsFileSample.specimen_id == Specimen.id)
        .where(OmicsFileSample.id.in_(objects))
    )


OBJECT_KIND = ObjectKind(KIND, _of_specimens, _rows, _site_ids)


def write_mudata(snapshot: CohortSnapshot, path: Any) -> dict[str, int]:
    """The snapshot's ingested omics matrices as one MuData file (``.h5mu``).

    One modality per omics kind (``rna_seq``, ``methylation``, ``proteomics``,
    ``metabolomics``), files of a kind joined on their features; observations are the
    snapshot's aliquots (by barcode) with their pseudonymous participant, case, lesion and
    diagnosis. Variant files are not matrices and stay in the manifest.
    """
    import anndata as ad
    import mudata as md
    import pandas as pd

    objects = sa.select(CohortSnapshotObject.object_id).where(
        CohortSnapshotObject.snapshot_id == snapshot.id, CohortSnapshotObject.kind == KIND
    )
    rows = db.session.execute(
        sa.select(
            OmicsFile.id,
            OmicsFile.kind,
            OmicsFile.matrix_uri,
            OmicsFileSample.sample_name,
            Specimen.barcode,
            Specimen.participant_id,
            Specimen.case_id,
            Specimen.lesion_id,
        )
        .join(OmicsFile, OmicsFile.id == OmicsFileSample.file_id)
        .join(Specimen, Specimen.id == OmicsFileSample.specimen_id)
        .where(OmicsFileSample.id.in_(objects), OmicsFile.matrix_uri.is_not(None))
        .order_by(OmicsFile.id, OmicsFileSample.id)
    ).all()
    if not rows:
        raise Conflict(
            "this snapshot has no ingested omics matrix (RNA-Seq, methylation, proteomics, metabolomics)",
            field="snapshot",
        )
    cases = cohorts.case_facts({r.case_id for r in rows})
    lesions = cohorts.lesion_facts({r.lesion_id for r in rows})
    participants = dict(
        db.session.execute(
            sa.select(Participant.id, Participant.code).where(
                Participant.id.in_({r.participant_id for r in rows})
            )
        ).all()
    )
    by_kind: dict[str, list[Any]] = defaultdict(list)
    by_file: dict[int, list[Any]] = defaultdict(list)
    for r in rows:
        by_file[r.id].append(r)
    for file_rows in by_file.values():
        first = file_rows[0]
        adata = ad.read_h5ad(storage_root() / first.matrix_uri)
        names = [r.sample_name for r in file_rows if r.sample_name in adata.obs_names]
        part = adata[names].copy()
        info = {r.sample_name: r for r in file_rows}
        part.obs_names = [info[n].barcode for n in names]
        part.obs = pd.DataFrame(
            {
                "participant": [participants[info[n].participant_id] for n in names],
                "case": [cases.get(info[n].case_id, {}).get("code") for n in names],
                "lesion": [(lesions.get(info[n].lesion_id) or {}).get("code") for n in names],
                "diagnosis": [cases.get(info[n].case_id, {}).get("disease_group") for n in names],
            },
            index=part.obs_names,
        )
        for layer in list(part.layers):  # keep the values, not bookkeeping layers
            if layer != "counts":
                del part.layers[layer]
        by_kind[first.kind.value].append(part)
    modalities = {}
    for kind, parts in by_kind.items():
        joined = parts[0] if len(parts) == 1 else ad.concat(parts, join="outer", merge="first")
        joined.obs_names_make_unique()
        modalities[kind] = joined
    with md.set_options(pull_on_update=False):  # the modalities keep their own columns
        mdata = md.MuData(modalities)
        mdata.uns["lims"] = {
            "snapshot_id": snapshot.id,
            "cohort_id": snapshot.cohort_id,
            "data_release": snapshot.data_release,
            "manifest_sha256": snapshot.manifest_sha256,
        }
        mdata.write(str(path))
    return {kind: a.n_obs for kind, a in modalities.items()}


blp = Blueprint("omics_cohorts", __name__, description="Cohort snapshots' omics matrices")


@blp.route("/<int:cohort_id>/mudata")
class MuDataView(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.arguments(MuDataArgsSchema, location="query")
    @blp.response(200, {"type": "string", "format": "binary"}, content_type="application/x-hdf5")
    def get(self, args: dict[str, Any], cohort_id: int) -> Any:
        """A frozen snapshot's omics matrices as MuData (`.h5mu`), managers only

        One modality per omics kind; observations are the snapshot's aliquots by barcode
        with pseudonymous participant, case, lesion and diagnosis.
        """
        actor = current_actor()
        if not has_role(actor, MANAGERS):
            raise PermissionDenied("omics matrices are exported by biobank managers")
        snapshot = cohorts.snapshot_of(cohorts.get_cohort(cohort_id, actor), args.get("snapshot"), actor)
        cohorts.check_export_sites(snapshot, actor)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "cohort.h5mu"
            write_mudata(snapshot, path)
            body = path.read_bytes()
        name = f"cohort-{cohort_id}-snapshot-{snapshot.id}.h5mu"
        return Response(
            body,
            mimetype="application/x-hdf5",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
