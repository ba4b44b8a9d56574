"""GA4GH Data Repository Service (DRS) 1.2 over the registered omics files and images.

``/ga4gh/drs/v1/service-info``, ``/objects/{id}`` and ``/objects/{id}/access/{access_id}``;
the access URL serves the file's bytes with HTTP Range support (``206 Partial Content``).
Object ids are the files' SHA-256 checksums, so an id never changes nor names other bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Response, request, send_file, url_for
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields

from biobank.auth import ALL_ROLES, current_actor, roles_required
from biobank.db import db
from biobank.errors import NotFound
from biobank.models import Image
from biobank.schemas.base import BaseSchema
from biobank.services.images import file_path, image_clause
from biobank.version import __version__
from omics import services
from omics.access import file_clause
from omics.models import FileStatus, OmicsFile

blp = Blueprint(
    "drs",
    __name__,
    url_prefix="/ga4gh/drs/v1",
    description="GA4GH DRS 1.2: omics files and images by checksum, bytes with Range",
)
ACCESS_ID = "https"
MIME = {"vcf": "text/vcf"}


class ChecksumSchema(BaseSchema):
    checksum = fields.String()
    type = fields.String()


class AccessMethodSchema(BaseSchema):
    type = fields.String()
    access_id = fields.String()


class DrsObjectSchema(BaseSchema):
    id = fields.String()
    name = fields.String()
    self_uri = fields.String()
    size = fields.Integer()
    created_time = fields.String()
    mime_type = fields.String()
    checksums = fields.List(fields.Nested(ChecksumSchema))
    access_methods = fields.List(fields.Nested(AccessMethodSchema))
    description = fields.String()
    aliases = fields.List(fields.String())


class AccessUrlSchema(BaseSchema):
    url = fields.String()
    headers = fields.List(fields.String())


@dataclass(frozen=True)
class DrsRecord:
    sha256: str
    name: str
    size: int
    created_at: Any
    mime_type: str
    description: str
    alias: str
    path: Path


def omics_file(object_id: str) -> OmicsFile | None:
    """The omics file of SHA-256 *object_id* if the caller may see it (``omics.access``)."""
    return db.session.scalar(
        sa.select(OmicsFile).where(OmicsFile.sha256 == object_id, file_clause(current_actor()))
    )


def _object(object_id: str) -> DrsRecord:
    """An omics file or an image, by its SHA-256, if the caller may see it
    (``omics.access``); any other is 'not found'."""
    actor = current_actor()
    record = omics_file(object_id)
    if record is not None:
        samples = [s.sample_name for s in record.samples]
        return DrsRecord(
            record.sha256,
            record.filename,
            record.size_bytes,
            record.created_at,
            MIME.get(record.format, "application/octet-stream"),
            f"{record.kind.value} {record.format} file"
            + (f", {record.reference_genome}" if record.reference_genome else "")
            + (f"; samples: {', '.join(samples)}" if samples else "")
            + ("" if record.status is not FileStatus.FAILED else "; not ingested"),
            f"omics-file-{record.id}",
            services.file_path(record),
        )
    image = db.session.scalar(sa.select(Image).where(Image.sha256 == object_id, image_clause(actor)))
    if image is not None:
        size = f", {image.width}×{image.height} px" if image.width else ""
        return DrsRecord(
            image.sha256,
            image.filename,
            image.size_bytes,
            image.created_at,
            image.mime_type,
            f"{image.modality.value} image{size}",
            f"image-{image.id}",
            file_path(image),
        )
    raise NotFound(f"no object {object_id!r}")


def _iso(value: Any) -> str:
    return value.isoformat().replace("+00:00", "Z")


@blp.route("/service-info")
class ServiceInfoViews(MethodView):
    @blp.response(200)
    def get(self) -> Any:
        """GA4GH service-info of this DRS"""
        return {
            "id": "org.biobank-lims.drs",
            "name": "Biobank LIMS omics files",
            "type": {"group": "org.ga4gh", "artifact": "drs", "version": "1.2.0"},
            "description": "Exome, RNA-Seq, methylation, proteomics and metabolomics files "
            "linked to biobank aliquots",
            "organization": {"name": "Biobank LIMS", "url": request.host_url.rstrip("/")},
            "version": __version__,
            "environment": "production",
        }


@blp.route("/objects/<object_id>")
class ObjectViews(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.response(200, DrsObjectSchema)
    def get(self, object_id: str) -> Any:
        """A file as a DRS object: size, SHA-256, how to get its bytes"""
        record = _object(object_id)
        return {
            "id": record.sha256,
            "name": record.name,
            "self_uri": f"drs://{request.host}/{record.sha256}",
            "size": record.size,
            "created_time": _iso(record.created_at),
            "mime_type": record.mime_type,
            "checksums": [{"checksum": record.sha256, "type": "sha-256"}],
            "access_methods": [{"type": "https", "access_id": ACCESS_ID}],
            "description": record.description,
            "aliases": [record.alias],
        }


@blp.route("/objects/<object_id>/access/<access_id>")
class AccessViews(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.response(200, AccessUrlSchema)
    def get(self, object_id: str, access_id: str) -> Any:
        """Where to fetch the object's bytes (send the same bearer token there)"""
        record = _object(object_id)
        if access_id != ACCESS_ID:
            raise NotFound(f"no access method {access_id!r} (this object has {ACCESS_ID!r})")
        return {
            "url": url_for("drs.ContentViews", object_id=record.sha256, _external=True),
            "headers": ["Authorization: the bearer token used here"],
        }


@blp.route("/objects/<object_id>/content")
class ContentViews(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.response(200, {"type": "string", "format": "binary"}, content_type="application/octet-stream")
    def get(self, object_id: str) -> Any:
        """The object's bytes; `Range: bytes=…` answers 206 with that part

        A range beyond the end answers 416 with `Content-Range: bytes */size`; several
        ranges, or a Range header that is not one byte range, get the whole object (200).
        """
        record = _object(object_id)
        if "Range" in request.headers:
            asked = request.range
            if asked is None or asked.units != "bytes" or len(asked.ranges) != 1:
                request.environ.pop("HTTP_RANGE", None)  # served whole, as RFC 9110 allows
                request.__dict__.pop("range", None)
            else:
                size = Path(record.path).stat().st_size
                if asked.range_for_length(size) is None:
                    return Response(status=416, headers={"Content-Range": f"bytes */{size}"})
        return send_file(
            record.path,
            download_name=record.name,
            mimetype=record.mime_type,
            conditional=True,
            etag=record.sha256,
            max_age=0,
        )
