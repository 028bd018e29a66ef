from dataclasses import dataclass
@dataclass(frozen=True)
class ValidationScope:
    slot: str
def build_validation_report(*a, **k): raise NotImplementedError
def write_validation_report(*a, **k): raise NotImplementedError
