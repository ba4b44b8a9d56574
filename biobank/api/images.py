"""Images of lesions and specimens: register, list, thumbnails (bytes through DRS)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from flask import send_file
from flask.views import MethodView
from flask_smorest import Blueprint

from biobank.auth import STAFF, current_actor, roles_required
from biobank.db import transaction
from biobank.schemas.images import ImageFileSchema, ImageFormSchema, ImageQuerySchema, ImageSchema
from biobank.services import images

blp = Blueprint(
    "images",
    __name__,
    description="Clinical photos, dermoscopy and whole-slide images linked to cases, lesions and specimens",
)


@blp.route("/")
class ImagesView(MethodView):
    @roles_required(*STAFF)
    @blp.arguments(ImageQuerySchema, location="query")
    @blp.response(200, ImageSchema(many=True))
    def get(self, args: dict[str, Any]) -> Any:
        """Images of a case, lesion or specimen (of one's sites)"""
        return images.list_images(actor=current_actor(), **args)

    @roles_required(*STAFF)
    @blp.arguments(ImageFormSchema, location="query")
    @blp.arguments(ImageFileSchema, location="files")
    @blp.response(201, ImageSchema)
    def post(self, form: dict[str, Any], files: dict[str, Any]) -> Any:
        """Register one image: stored by SHA-256 (the same bytes again answer 200)

        The file is the multipart body; its links and metadata are query parameters.
        """
        upload = files["file"]
        name = Path(upload.filename or "image").name or "image"
        links = {k: form.pop(k, None) for k in ("case", "lesion", "specimen")}
        flags = form.pop("quality_flags", "") or ""
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            upload.save(path)
            upload.close()  # a large upload is spooled to a temporary file: let it go now
            with transaction():
                image, created = images.register_image(
                    actor=current_actor(),
                    path=path,
                    filename=name,
                    links=links,
                    metadata={**form, "quality_flags": flags.split(";")},
                )
        return image, 201 if created else 200


@blp.route("/<int:image_id>")
class ImageView(MethodView):
    @roles_required(*STAFF)
    @blp.response(200, ImageSchema)
    def get(self, image_id: int) -> Any:
        """One image's record"""
        return images.get_image(image_id, current_actor())


@blp.route("/<int:image_id>/thumbnail")
class ThumbnailView(MethodView):
    @roles_required(*STAFF)
    @blp.response(200, {"type": "string", "format": "binary"}, content_type="image/png")
    def get(self, image_id: int) -> Any:
        """A PNG of at most 256×256 pixels"""
        image = images.get_image(image_id, current_actor())
        return send_file(images.thumbnail(image), mimetype="image/png", max_age=3600, etag=image.sha256)
