"""The `validation` block: expected subjects of a permission.

What is compared: the set of subjects that hold `res:id#perm`, as LookupSubjects reports
it for every definition (plain subjects and wildcards) and for every subject set that
appears as a subject in the file's relationships. Conditional subjects compare as
`subj[...]`, wildcards with their exclusions as `user:* - {user:a, user:b[...]}` (`[...]`:
excluded only under a condition). The `<...>` part of
each entry (which relationship path grants it, in `zed`'s expansion tree) is not
compared: it describes the proof, not the answer.
"""

from __future__ import annotations

from authz_service.engine import Decision, Engine, Snapshot, SubjectResult
from authz_service.errors import AuthzError
from authz_service.model import EMPTY_CONTEXT, WILDCARD
from authz_service.validation.files import ValidationFile
from authz_service.validation.report import FileReport

__all__ = ["check_expected", "subject_kinds"]


def subject_kinds(snap: Snapshot, loaded: ValidationFile) -> list[tuple[str, str]]:
    kinds = {(name, "") for name in snap.schema.definitions}
    kinds |= {(r.subject.type, r.subject.relation) for r in loaded.relationships}
    return sorted(kinds)


def _text(subject_type: str, relation: str, found: SubjectResult) -> str:
    text = f"{subject_type}:{found.subject_id}" + (f"#{relation}" if relation else "")
    if found.subject_id == WILDCARD and found.excluded_subjects:
        names = ", ".join(
            sorted(
                f"{subject_type}:{e.subject_id}"
                + ("[...]" if e.decision is Decision.CONDITIONAL else "")
                for e in found.excluded_subjects
            )
        )
        text += f" - {{{names}}}"
    if found.decision is Decision.CONDITIONAL:
        text += "[...]"
    return text


async def check_expected(
    engine: Engine, snap: Snapshot, loaded: ValidationFile, report: FileReport
) -> None:
    kinds = subject_kinds(snap, loaded)
    for expected in loaded.expected:
        what = f"validation `{expected.key}`"
        actual: set[str] = set()
        try:
            for subject_type, relation in kinds:
                async for found in engine.lookup_subjects(
                    snap,
                    expected.resource,
                    expected.permission,
                    subject_type,
                    EMPTY_CONTEXT,
                    subject_relation=relation,
                ):
                    actual.add(_text(subject_type, relation, found))
        except AuthzError as exc:
            report.fail(what, f"error: {exc}")
            continue
        missing = sorted(expected.subjects - actual)
        unexpected = sorted(actual - expected.subjects)
        for subject in missing:
            report.fail(what, f"expected subject `{subject}`, got none")
        for subject in unexpected:
            report.fail(what, f"unexpected subject `{subject}`")
        if not missing and not unexpected:
            report.passed += 1
