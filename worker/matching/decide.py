"""What to do with a record's ranked candidates: take one, ask a person, skip, or note that nothing was found."""

from __future__ import annotations

from dataclasses import dataclass

from worker.matching.models import MatchStatus
from worker.matching.score import Scored, is_sole_proprietor
from worker.matching.spec import MatchingSpec

BELOW = "the best candidate scores below the threshold"
CLOSE = "several candidates score close to each other"
SOLE = "a sole proprietorship: a person's name is not a company name, so it is never matched by itself"
NOT_BLANK = "the org-number field holds a value; fill_blank never overwrites it"
POLICY = "org_number_policy = review: every match waits for a person"


@dataclass(frozen=True, slots=True)
class Verdict:
    status: MatchStatus
    reason: str | None = None
    chosen: Scored | None = None


def decide(ranked: list[Scored], spec: MatchingSpec, *, field_blank: bool) -> Verdict:
    """The verdict for one record's candidates, best first.

    Args:
        ranked: the candidates with scores (worker.matching.score.rank).
        spec: the connection's ``[matching]``.
        field_blank: the record's org-number field is empty (fill_blank may write it).
    """
    if not ranked:
        return Verdict(MatchStatus.NO_MATCH, "the registry found no company of that name")
    best = ranked[0]
    if any(is_sole_proprietor(s.candidate) for s in ranked[:2] if s.score >= best.score - spec.margin):
        status = MatchStatus.SKIPPED if spec.sole_proprietors == "skip" else MatchStatus.REVIEW
        return Verdict(status, SOLE)
    doubt = _doubt(ranked, spec, field_blank)
    return Verdict(MatchStatus.REVIEW, doubt) if doubt else Verdict(MatchStatus.AUTO, None, best)


def _doubt(ranked: list[Scored], spec: MatchingSpec, field_blank: bool) -> str | None:
    """Why the best candidate may not be taken without a person, or None."""
    best = ranked[0]
    reasons = (
        (best.score < spec.threshold, BELOW),
        (len(ranked) > 1 and ranked[1].score >= best.score - spec.margin, CLOSE),
        (spec.org_number_policy == "review", POLICY),
        (not field_blank, NOT_BLANK),
    )
    return next((reason for applies, reason in reasons if applies), None)
