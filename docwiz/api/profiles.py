"""Patient profiles over HTTP: create, read, update with history; every access
is audited, refused and missing ones included."""

from __future__ import annotations

import re

from aiohttp import web
from sqlalchemy.exc import IntegrityError

from docwiz.api.routing import RouteTable
from docwiz.appkeys import DATABASE, FIELD_CIPHER
from docwiz.auth_context import current_user
from docwiz.errors import BadRequest
from docwiz.services import audit, profiles
from docwiz.services.profiles import (
    ProfileExists,
    ProfileIn,
    ProfileOut,
    ProfilePatch,
    ProfileVersionOut,
)

routes = RouteTable("profiles")

_IF_MATCH = re.compile(r'^\s*(?:W/)?"?(\d{1,9})"?\s*$')

NOT_YOURS = "Not authorized to access this profile"


def _profile_response(profile: ProfileOut, status: int = 200) -> web.Response:
    """The profile with its version as ETag, for a later ``If-Match``."""
    return web.json_response(
        profile.model_dump(mode="json"),
        status=status,
        headers={"ETag": f'"{profile.version}"'},
    )


def _expected_version(request: web.Request, body: ProfilePatch) -> int | None:
    header = request.headers.get("If-Match")
    from_header = None
    if header is not None:
        match = _IF_MATCH.match(header)
        if match is None:
            raise BadRequest('If-Match must be a profile version, e.g. "3"')
        from_header = int(match.group(1))
    if body.version is not None and from_header not in (None, body.version):
        raise BadRequest("The body's version and the If-Match header disagree")
    return body.version if body.version is not None else from_header


@routes.post(
    "/profiles",
    summary="Create the caller's patient profile",
    body=ProfileIn,
    response=ProfileOut,
    status=201,
    errors={
        400: "The caller already has a profile",
        422: "Validation failed (missing or invalid fields)",
    },
)
async def create_profile(request: web.Request, body: ProfileIn) -> web.Response:
    """One profile per user. ``country`` defaults to USA; the policy number
    and the medical history are stored encrypted."""
    user = current_user(request)
    async with audit.audited(
        request, action="profile.create", resource_type="profile"
    ) as event:
        try:
            async with request.app[DATABASE].session() as session:
                profile = await profiles.create_profile(
                    session, request.app[FIELD_CIPHER], user, body
                )
        except IntegrityError:
            # The same user's profile created by a concurrent request.
            raise ProfileExists("A profile already exists for this user") from None
        event.resource_id = event.patient_id = profile.id
    return _profile_response(
        profiles.read_profile(profile, request.app[FIELD_CIPHER]), status=201
    )


@routes.get(
    "/profiles/me",
    summary="The caller's patient profile",
    response=ProfileOut,
    errors={404: "Profile not found"},
)
async def my_profile(request: web.Request) -> web.Response:
    user = current_user(request)
    async with audit.audited(
        request, action="profile.read", resource_type="profile"
    ) as event:
        async with request.app[DATABASE].session() as session:
            profile = await profiles.profile_of_user(session, user.id)
        event.resource_id = event.patient_id = profile.id
        shown = profiles.read_profile(profile, request.app[FIELD_CIPHER])
    return _profile_response(shown)


@routes.get(
    "/profiles/{profile_id}",
    summary="A patient profile by id",
    response=ProfileOut,
    errors={403: NOT_YOURS, 404: "Profile not found"},
)
async def get_profile(request: web.Request) -> web.Response:
    user = current_user(request)
    profile_id = request.match_info["profile_id"]
    async with audit.audited(
        request, action="profile.read", resource_type="profile", resource_id=profile_id
    ) as event:
        async with request.app[DATABASE].session() as session:
            profile = await profiles.find_profile(session, profile_id)
        event.patient_id = profile.id
        profiles.ensure_owner(profile, user)
        shown = profiles.read_profile(profile, request.app[FIELD_CIPHER])
    return _profile_response(shown)


@routes.put(
    "/profiles/{profile_id}",
    summary="Update a patient profile",
    body=ProfilePatch,
    response=ProfileOut,
    errors={
        400: "If-Match is malformed or disagrees with the body's version",
        403: NOT_YOURS,
        404: "Profile not found",
        409: "The profile changed since the version the client sent",
        422: "The field values, or the profile after merging them, are invalid",
    },
)
async def update_profile(request: web.Request, body: ProfilePatch) -> web.Response:
    """Nested objects merge (changing ``location.zip_code`` keeps the city);
    ``null`` clears an optional field. Each update raises ``version`` by one.
    Send the version you read (``version`` or ``If-Match``) to get 409
    instead of overwriting someone else's change."""
    user = current_user(request)
    profile_id = request.match_info["profile_id"]
    expected = _expected_version(request, body)
    cipher = request.app[FIELD_CIPHER]
    async with audit.audited(
        request,
        action="profile.update",
        resource_type="profile",
        resource_id=profile_id,
    ) as event:
        async with request.app[DATABASE].session() as session:
            profile = await profiles.find_profile(session, profile_id, lock=True)
            event.patient_id = profile.id
            profiles.ensure_owner(profile, user)
            await profiles.update_profile(
                session,
                cipher,
                profile,
                body,
                expected_version=expected,
                changed_by=user.id,
            )
        shown = profiles.read_profile(profile, cipher)
    return _profile_response(shown)


@routes.get(
    "/profiles/{profile_id}/history",
    summary="Every version of a profile and what it changed",
    response=list[ProfileVersionOut],
    errors={403: NOT_YOURS, 404: "Profile not found"},
)
async def profile_history(request: web.Request) -> list[ProfileVersionOut]:
    """Changed fields as dotted paths with their new values; the encrypted
    fields are listed as ``"[encrypted]"`` without their values."""
    user = current_user(request)
    profile_id = request.match_info["profile_id"]
    async with (
        audit.audited(
            request,
            action="profile.history",
            resource_type="profile",
            resource_id=profile_id,
        ) as event,
        request.app[DATABASE].session() as session,
    ):
        profile = await profiles.find_profile(session, profile_id)
        event.patient_id = profile.id
        profiles.ensure_owner(profile, user)
        rows = await profiles.versions(session, profile_id)
    return [
        ProfileVersionOut(
            version=row.version, updated_at=row.created_at, changes=row.changes
        )
        for row in rows
    ]
