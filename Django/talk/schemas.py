from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints

Nickname = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=2000)]


class TalkMessageIn(BaseModel):
    """A chat frame as a client sends it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["message"]
    # A guest's name. A signed-in user's messages carry their user name: this is ignored.
    nickname: Nickname | None = None
    text: Text
