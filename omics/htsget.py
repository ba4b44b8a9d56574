"""GA4GH htsget 1.3: a region of a stored BAM or VCF as a ticket of URLs.

``/htsget/reads/{id}`` (BAM; CRAM whole) and ``/htsget/variants/{id}`` (VCF; BCF's records
whole, its header cut), ids being the
files' SHA-256 as in DRS, with the same access rules. A ticket lists the header (made here,
as a ``data:`` URL), the blocks of the stored file holding the region's records (byte ranges
of the DRS content URL), the partial blocks at its edges recompressed (``data:`` URLs), and
the end-of-file block. The index (``.bai``/``.tbi``) is built beside the stored file on first
use; a VCF that is not bgzipped is served from a bgzipped copy kept with it.
"""

from __future__ import annotations

import base64
import gzip
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pysam
from flask import Response, jsonify, request, send_file, url_for
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields

from biobank.auth import ALL_ROLES, roles_required
from biobank.errors import BiobankError
from biobank.schemas.base import BaseSchema
from biobank.version import __version__
from omics import drs, services
from omics.formats import htsindex
from omics.formats.errors import FormatError
from omics.models import OmicsFile

blp = Blueprint(
    "htsget",
    __name__,
    url_prefix="/htsget",
    description="GA4GH htsget 1.3: regions of BAM and VCF files as tickets of URLs",
)
TICKET_MIME = "application/vnd.ga4gh.htsget.v1.3.0+json"
DATATYPES = {"reads": ("BAM", ["BAM", "CRAM"]), "variants": ("VCF", ["VCF", "BCF"])}
MAX_POSITION = 2**31 - 1


class HtsgetError(Exception):
    """An error as htsget words it: its type names the kind, the message what is wrong."""

    STATUS = {
        "InvalidAuthentication": 401,
        "PermissionDenied": 403,
        "NotFound": 404,
        "UnsupportedFormat": 400,
        "InvalidInput": 400,
        "InvalidRange": 400,
    }

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message


def _error_response(kind: str, message: str) -> Response:
    response = jsonify({"htsget": {"error": kind, "message": message}})
    response.status_code = HtsgetError.STATUS[kind]
    return response


@blp.errorhandler(HtsgetError)
def _htsget_error(error: HtsgetError) -> Response:
    return _error_response(error.kind, error.message)


@blp.errorhandler(BiobankError)
def _domain_error(error: BiobankError) -> Response:
    kind = {401: "InvalidAuthentication", 403: "PermissionDenied", 404: "NotFound"}.get(
        error.status, "InvalidInput"
    )
    return _error_response(kind, error.message)


class ErrorBodySchema(BaseSchema):
    error = fields.String(
        metadata={
            "description": "InvalidAuthentication, PermissionDenied, "
            "NotFound, UnsupportedFormat, InvalidInput, InvalidRange"
        }
    )
    message = fields.String()


class ErrorSchema(BaseSchema):
    htsget = fields.Nested(ErrorBodySchema)


class UrlSchema(BaseSchema):
    url = fields.String()
    headers = fields.Dict(keys=fields.String(), values=fields.String())
    # "class" is a Python keyword: the field keeps the wire name through data_key
    class_ = fields.String(data_key="class")


class TicketBodySchema(BaseSchema):
    format = fields.String()
    urls = fields.List(fields.Nested(UrlSchema))


class TicketSchema(BaseSchema):
    htsget = fields.Nested(TicketBodySchema)


QUERY = [
    {
        "in": "query",
        "name": "format",
        "schema": {"type": "string"},
        "description": "BAM or CRAM (reads), VCF (variants); the file's own by default",
    },
    {
        "in": "query",
        "name": "class",
        "schema": {"type": "string", "enum": ["header", "body"]},
        "description": "`header`: the header only",
    },
    {
        "in": "query",
        "name": "referenceName",
        "schema": {"type": "string"},
        "description": "a reference of the file (`7` and `chr7` name the same one); `*`: unplaced reads",
    },
    {
        "in": "query",
        "name": "start",
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_POSITION},
        "description": "0-based, inclusive",
    },
    {
        "in": "query",
        "name": "end",
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_POSITION},
        "description": "0-based, exclusive",
    },
    {
        "in": "query",
        "name": "fields",
        "schema": {"type": "string"},
        "description": "accepted; every field is returned",
    },
    {
        "in": "query",
        "name": "tags",
        "schema": {"type": "string"},
        "description": "accepted; every tag is returned",
    },
    {
        "in": "query",
        "name": "notags",
        "schema": {"type": "string"},
        "description": "accepted; every tag is returned",
    },
]


def _documented(func: Callable[..., Any]) -> Callable[..., Any]:
    for status, text in (
        (400, "unsupported format, invalid input or range"),
        (401, "no valid credentials"),
        (403, "a role that may not read files"),
        (404, "no such file for you, or no such reference in it"),
    ):
        func = blp.alt_response(
            status, schema=ErrorSchema, description=text, content_type="application/json"
        )(func)
    return func


@blp.route("/<any(reads, variants):datatype>/service-info")
class ServiceInfoViews(MethodView):
    @blp.response(200)
    def get(self, datatype: str) -> Any:
        """GA4GH service-info of this htsget endpoint"""
        _, formats = DATATYPES[datatype]
        return {
            "id": f"org.biobank-lims.htsget.{datatype}",
            "name": f"Biobank LIMS {datatype}",
            "type": {"group": "org.ga4gh", "artifact": "htsget", "version": "1.3.0"},
            "organization": {"name": "Biobank LIMS", "url": request.host_url.rstrip("/")},
            "version": __version__,
            "htsget": {
                "datatype": datatype,
                "formats": formats,
                "fieldsParametersEffective": False,
                "tagsParametersEffective": False,
            },
        }


@blp.route("/<any(reads, variants):datatype>/<object_id>")
class TicketViews(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.doc(parameters=QUERY)
    @blp.response(200, TicketSchema, content_type=TICKET_MIME)
    @_documented
    def get(self, datatype: str, object_id: str) -> Any:
        """A ticket for the file's records of a region (or all, or its header only)"""
        query = _query(datatype)
        stored = _stored(datatype, object_id)
        ticket = stored.ticket(query)
        response = jsonify({"htsget": ticket})
        response.mimetype = TICKET_MIME
        return response


@blp.route("/variants/<object_id>/bgzf")
class CopyViews(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.response(200, {"type": "string", "format": "binary"}, content_type="application/octet-stream")
    @_documented
    def get(self, object_id: str) -> Any:
        """The bgzipped copy of a VCF stored without BGZF, which its tickets point into
        (`Range: bytes=…` answers 206)"""
        stored = _stored("variants", object_id)
        if not stored.copied:
            raise HtsgetError(
                "NotFound", f"{stored.filename} is stored bgzipped: its tickets point to its DRS content"
            )
        stored.index()
        return send_file(stored.data_path, mimetype="application/octet-stream", conditional=True, max_age=0)


def _integer(name: str) -> int | None:
    value = request.args.get(name)
    if value is None:
        return None
    if not value.isdigit() or int(value) > MAX_POSITION:
        raise HtsgetError(
            "InvalidInput", f"{name} must be a whole number from 0 to {MAX_POSITION}, not {value!r}"
        )
    return int(value)


def _query(datatype: str) -> dict[str, Any]:
    default, formats = DATATYPES[datatype]
    wanted = request.args.get("format", default).upper()
    if wanted not in formats:
        raise HtsgetError(
            "UnsupportedFormat",
            f"format {wanted!r} is not served for {datatype}: ask for {' or '.join(formats)}",
        )
    part = request.args.get("class")
    if part not in (None, "header", "body"):
        raise HtsgetError("InvalidInput", f"class must be header or body, not {part!r}")
    name = request.args.get("referenceName")
    start, end = _integer("start"), _integer("end")
    if name is None and (start is not None or end is not None):
        raise HtsgetError("InvalidInput", "start and end need a referenceName")
    if name == "*" and (start is not None or end is not None):
        raise HtsgetError("InvalidInput", "unplaced reads (referenceName=*) have no positions")
    if start is not None and end is not None and start > end:
        raise HtsgetError("InvalidRange", f"start {start} is after end {end}")
    if part == "header" and name is not None:
        raise HtsgetError("InvalidInput", "class=header takes no referenceName, start or end")
    return {
        "format": wanted,
        "header_only": part == "header",
        "name": name,
        "start": start or 0,
        "end": MAX_POSITION if end is None else end,
    }


class StoredFile:
    """A stored file and what an htsget ticket needs of it: its BGZF data, index, header."""

    def __init__(self, datatype: str, sha256: str, path: Path, filename: str, derived_dir: Path) -> None:
        self.datatype, self.sha256, self.path, self.filename = datatype, sha256, path, filename
        self.cram = path.suffix.lower() == ".cram" or filename.lower().endswith(".cram")
        self.bcf = datatype == "variants" and filename.lower().endswith(".bcf")
        self.data_path, self.copied = path, False
        if datatype == "variants" and not self.bcf and not htsindex.is_bgzf(path):
            self.data_path, self.copied = derived_dir / f"{sha256}.vcf.gz", True

    @property
    def format(self) -> str:
        if self.datatype == "reads":
            return "CRAM" if self.cram else "BAM"
        return "BCF" if self.bcf else "VCF"

    @property
    def whole_records(self) -> bool:
        """Records served whole, the region not cut: CRAM's containers and BCF (whose CSI
        index is not read here) are; a client keeps the region's records, as htsget allows."""
        return self.cram or self.bcf

    def _header_length(self) -> Callable[[bytes, bool], int | None]:
        if self.datatype == "reads":
            return htsindex.bam_header_length
        return htsindex.bcf_header_length if self.bcf else htsindex.vcf_header_length

    def _content_url(self) -> str:
        if self.copied:
            return url_for("htsget.CopyViews", object_id=self.sha256, _external=True)
        return url_for("drs.ContentViews", object_id=self.sha256, _external=True)

    def _copy(self) -> None:
        if self.copied and not self.data_path.exists():
            _atomically(self.data_path, lambda out: _bgzip(self.path, out))

    def index(self) -> htsindex.Index:
        """The BGZF data and its index, made beside the stored file on first use."""
        self._copy()
        suffix = ".bai" if self.datatype == "reads" else ".tbi"
        index_path = self.data_path.with_name(self.data_path.name + suffix)
        if not index_path.exists():
            _atomically(
                index_path, lambda out: _make_index(self.data_path, out, self.datatype, self.filename)
            )
        try:
            return htsindex.read_index(index_path)
        except FormatError as error:
            raise HtsgetError("UnsupportedFormat", f"{self.filename}: {error.message}") from None

    def ticket(self, query: dict[str, Any]) -> dict[str, Any]:
        if query["format"] != self.format:
            raise HtsgetError("UnsupportedFormat", f"{self.filename} is {self.format}, not {query['format']}")
        auth = (
            {"Authorization": request.headers["Authorization"]} if "Authorization" in request.headers else {}
        )
        if self.cram or (not query["header_only"] and (query["name"] is None or self.whole_records)):
            return {
                "format": self.format,
                "urls": [
                    {
                        "url": url_for("drs.ContentViews", object_id=self.sha256, _external=True),
                        "headers": auth,
                        "class": "body",
                    }
                ],
            }
        index = None if query["header_only"] else self.index()
        self._copy()
        data = htsindex.BgzfFile(self.data_path)
        try:
            header_end = data.header_end(self._header_length())
            header = data.uncompressed_prefix(header_end)
        except (FormatError, ValueError) as error:
            raise HtsgetError("UnsupportedFormat", f"{self.filename}: {error}") from None
        urls = [_data_url(htsindex.compress_block(header), "header")]
        if index is not None:
            for piece in data.pieces(self._chunks(index, header, query)):
                if piece.data is not None:
                    urls.append(_data_url(piece.data, "body"))
                else:
                    urls.append(
                        {
                            "url": self._content_url(),
                            "class": "body",
                            "headers": auth | {"Range": f"bytes={piece.start}-{piece.stop - 1}"},
                        }
                    )
        urls.append(_data_url(htsindex.EOF_BLOCK, "body"))
        return {"format": self.format, "urls": urls}

    def _chunks(self, index: htsindex.Index, header: bytes, query: dict[str, Any]) -> list[tuple[int, int]]:
        names = index.names or htsindex.bam_reference_names(header)
        data = htsindex.BgzfFile(self.data_path)
        if query["name"] == "*":
            placed = [
                c for ref in range(len(index.references)) for c in htsindex.reference_chunks(index, ref)
            ]
            after = max((end for _, end in placed), default=None)
            eof = (data.size - len(htsindex.EOF_BLOCK)) << 16
            if after is None:
                raise HtsgetError(
                    "InvalidInput",
                    f"{self.filename} has no index of its placed reads to find the unplaced ones after",
                )
            return [(after, eof)] if index.unplaced and after < eof else []
        name = query["name"]
        if name not in names:
            twin = name[3:] if name.startswith("chr") else f"chr{name}"
            if twin not in names:
                raise HtsgetError("NotFound", f"{self.filename} has no reference {name!r}")
            name = twin
        ref = names.index(name)
        if ref >= len(index.references):
            return []
        start, end = query["start"], query["end"]
        if start >= end:
            return []
        past = (
            htsindex.bam_record_past(ref, end)
            if self.datatype == "reads"
            else htsindex.vcf_record_past(name, end)
        )
        return htsindex.region_chunks(
            index, ref, start, end, lambda offset: data.first_record_past(offset, past)
        )


def _data_url(data: bytes, part: str) -> dict[str, str]:
    return {"url": "data:;base64," + base64.b64encode(data).decode(), "class": part}


def _stored(datatype: str, object_id: str) -> StoredFile:
    """The file by its SHA-256 if the caller may see it (DRS' rules) and it holds *datatype*."""
    record = drs.omics_file(object_id)
    if record is None:
        raise HtsgetError("NotFound", f"no file {object_id!r}")
    expected = "bam" if datatype == "reads" else "vcf"
    if record.format != expected:
        raise HtsgetError("UnsupportedFormat", f"{record.filename} is a {record.format} file, not {datatype}")
    assert isinstance(record, OmicsFile)
    derived = services.storage_root() / "htsget"
    derived.mkdir(exist_ok=True)
    return StoredFile(datatype, record.sha256, services.file_path(record), record.filename, derived)


def _atomically(target: Path, make: Callable[[Path], None]) -> None:
    """Make *target* under a temporary name, then rename it: a reader never sees half."""
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=target.suffix)
    os.close(handle)
    try:
        make(Path(temporary))
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _bgzip(source: Path, out: Path) -> None:
    if source.read_bytes()[:2] == b"\x1f\x8b":  # plain gzip: unpack first
        with (
            gzip.open(source, "rb") as f,
            tempfile.NamedTemporaryFile(dir=out.parent, prefix=".", delete=False) as plain,
        ):
            shutil.copyfileobj(f, plain)
        try:
            pysam.tabix_compress(plain.name, str(out), force=True)
        finally:
            os.unlink(plain.name)
    else:
        pysam.tabix_compress(str(source), str(out), force=True)


def _make_index(data: Path, out: Path, datatype: str, filename: str) -> None:
    try:
        if datatype == "reads":
            pysam.index(str(data), "-o", str(out))
        else:
            pysam.tabix_index(str(data), preset="vcf", force=True, keep_original=True, index=str(out))
    except (pysam.SamtoolsError, OSError, ValueError) as error:
        what = "sorted by position" if datatype == "variants" else "coordinate-sorted"
        raise HtsgetError(
            "UnsupportedFormat",
            f"{filename} cannot be indexed, so no region "
            f"can be cut from it: is it {what}? "
            f"({str(error).strip()[:200]})",
        ) from None
