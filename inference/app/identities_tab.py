"""The Identities tab: photos → an identity (one encoder pass), named and saved into the library with a thumbnail;
a group photo → one identity per face (the face stack finds them); identity files downloaded and uploaded; the
library shown as a gallery."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import gradio as gr

from namespace import Identity
from namespace.faces import face_stack_installed
from namespace.images import as_image_list

from ..group_identity import group_face_stack, group_faces, one_photo
from ..inputs import InputCheck
from .drawing import PROGRESS, shown_errors
from .library import check_label, taken
from .state import AppState, pipeline_turn


def gallery_items(state: AppState) -> list[tuple[str, str]]:
    """(thumbnail, caption) per library identity, for a ``gr.Gallery``."""
    return [(str(entry.thumbnail), entry.label) for entry in state.library.entries() if entry.thumbnail]


def make_identity(state: AppState, photos: list[str] | None, label: str, check_faces: bool, progress=PROGRESS):
    """Encodes the uploaded photos into an identity saved as ``label``; returns the status line, the file and an
    empty photo list."""
    with InputCheck() as check:  # every problem at once
        label = check(check_label, (label or "").strip())
        if not photos:
            check.problem("photos: expected at least one photo of the person, got none")
        else:
            pictures = check(as_image_list, [Path(photo) for photo in photos], "photos")
    progress(0.2, desc=f"encoding {len(pictures)} photo(s)")
    with pipeline_turn(state) as naming:
        identity = naming.identity(pictures, label=label, check_faces=check_faces and face_stack_installed())
    identity.encoder = state.encoder_name
    path = state.library.save(identity, label, pictures[0])
    status = f"saved {path.stem!r}{taken(label, path.stem)} from {len(pictures)} photo(s) to {path}"
    return status, str(path), None  # None: the photo list is emptied, ready for the next person


def make_group_identities(state: AppState, photo: str | None, label: str, progress=PROGRESS):
    """One identity per face of a group photo into the library, ``label-1`` the leftmost (each with its face crop as
    the thumbnail and its box in the metadata); returns the status line, the identity files and an emptied photo.

    A photo with no face, or only faces too small to encode (``group_identity.MIN_FACE_SIDE``), is an error that
    says what was found; smaller faces beside larger ones are left out with a warning.
    """
    with InputCheck() as check:
        label = check(check_label, (label or "").strip() or "face")  # no prefix given: face-1, face-2, ...
        if not photo:
            check.problem("group photo: expected a photo of several people, got none")
        else:
            picture = check(one_photo, Path(photo), "group photo")
    faces = group_face_stack()  # FaceStackMissing names the extra to install
    progress(0.2, desc="finding and encoding the faces")
    with pipeline_turn(state) as naming:
        group = group_faces(naming.encoder, picture, faces=faces, label=label, argument="group photo")
    paths = []
    for person in group:
        person.identity.encoder = state.encoder_name
        paths.append(state.library.save(person.identity, person.identity.label, person.crop))
    names = ", ".join(repr(path.stem) for path in paths)
    status = f"saved {len(paths)} identities from the group photo, left to right: {names}"
    return status, [str(path) for path in paths], None


def upload_identity(state: AppState, file: str | None, label: str, progress=PROGRESS):
    """Adds an uploaded identity file to the library (its (N, D) must be the encoder's); the thumbnail is a portrait
    drawn with it."""
    from .drawing import draw

    if not file:
        raise ValueError("identity file: expected a .safetensors identity file, got none")
    identity = Identity.load(file, *state.library.shape)
    label = check_label((label or "").strip() or _label_of(identity, Path(file)))
    portrait, _ = draw(state, "a photo of a person", identity, progress, description="drawing a thumbnail")
    path = state.library.save(identity, label, portrait)
    return f"loaded {Path(file).name} as {path.stem!r}{taken(label, path.stem)} into the library", str(path)


def _label_of(identity: Identity, file: Path) -> str:
    """The file's own label when it is a valid library label, else its file name's."""
    for candidate in (identity.label, file.stem):
        try:
            return check_label(candidate)
        except ValueError:
            continue
    return "identity"


def build_identities_tab(state: AppState) -> tuple[gr.Gallery, list]:
    """Lays out the tab; returns the library gallery and the events that change the library."""
    stack = face_stack_installed()
    with gr.Row():
        with gr.Column():
            photos = gr.File(label="Photos of one person", file_count="multiple", file_types=["image"])
            label = gr.Textbox(label="Name (a label: letters, digits, _ or -)", placeholder="alice")
            check = gr.Checkbox(
                value=stack,
                interactive=stack,
                label="Check faces" if stack else "Check faces (needs the face stack: pip install magicnaming[faces])",
            )
            make = gr.Button("Make identity", variant="primary")
            with gr.Accordion("Several people from one photo", open=False):
                group_photo = gr.File(label="A group photo: one identity per face, from the left", file_types=["image"])
                group_label = gr.Textbox(label="Name prefix (guest: guest-1, guest-2, ...)", placeholder="face")
                group_make = gr.Button(
                    "One identity per face"
                    if stack
                    else "One identity per face (needs pip install magicnaming[faces])",
                    interactive=stack,
                )
        with gr.Column():
            status = gr.Textbox(label="Status", interactive=False)
            download = gr.File(label="Identity file (download)", interactive=False)
            with gr.Accordion("Load an identity file", open=False):
                upload = gr.File(label="Identity file (.safetensors)", file_types=[".safetensors"])
                upload_label = gr.Textbox(label="Name in the library (empty: the file's label)")
                load = gr.Button("Add to library")
    library = partial(gallery_items, state)
    gallery = gr.Gallery(value=library, label="Library", columns=8, height=220, object_fit="contain")
    made = make.click(shown_errors(partial(make_identity, state)), [photos, label, check], [status, download, photos])
    loaded = load.click(shown_errors(partial(upload_identity, state)), [upload, upload_label], [status, download])
    grouped = group_make.click(
        shown_errors(partial(make_group_identities, state)), [group_photo, group_label], [status, download, group_photo]
    )
    return gallery, [made, loaded, grouped]
