"""Hand-built sibling groups for the credit-reference tests (text level; no model needed).

`cancel_group()`: an airline-style cancellation, 2 successes and 3 failures, with the literal ids and answers
the leakage tests look for. Signatures (gud = get_user_details, grd = get_reservation_details):

    A  success  gud(user_id) grd(reservation_id) cancel_reservation(reservation_id)[write]    "... cancelled ..."
    B  success  grd(reservation_id) cancel_reservation(reservation_id)[write]                  "... cancelled ..."
    C  failure  gud(user_id) grd(reservation_id)                                               reply only
    D  failure  gud(user_id) update_reservation_flights(flights,reservation_id)[write, ERROR]  reply
    E  failure  grd(reservation_id)[ERROR: wrong id]                                           reply
"""

from __future__ import annotations

from sgcd.types import CallRecord, Episode, Message, Observation, Step, Trajectory, TrajectoryGroup

USER_ID = "mia_li_3668"
RES_ID = "ZFA04Y"
WRONG_RES_ID = "QQX91B"
FLIGHT = "HAT001"
PASSWORD = "pa55w0rd!"
REFUND = "$1,234.50"
ANSWER = f"Reservation {RES_ID} is cancelled; {REFUND} goes back to the original payment."
INSTRUCTION = f"You are {USER_ID} (password {PASSWORD}). Cancel reservation {RES_ID} and get a refund."

TOOLS = (
    {"type": "function", "function": {"name": "get_user_details", "parameters": {"type": "object",
     "properties": {"user_id": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "get_reservation_details", "parameters": {"type": "object",
     "properties": {"reservation_id": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "cancel_reservation", "parameters": {"type": "object",
     "properties": {"reservation_id": {"type": "string"}, "reason": {"type": "string",
                    "enum": ["change_of_plan", "airline_cancelled"]}}}}},
    {"type": "function", "function": {"name": "update_reservation_flights", "parameters": {"type": "object",
     "properties": {"reservation_id": {"type": "string"}, "flights": {"type": "array"}}}}},
)  # fmt: skip


def call(name: str, error: bool = False, write: bool = False, output: str = "{}", **args) -> CallRecord:
    return CallRecord(name, args, output, error=error, is_write=write)


def episode(
    label: str, success: bool, calls: list[CallRecord], answer: str, reward: float | None = None
) -> Episode:
    steps = [
        Step(turn=k, text=f"I will call {c.name}.", calls=(c,), observation=c.output, error=c.error)
        for k, c in enumerate(calls)
    ]
    steps.append(Step(turn=len(calls), text=answer, final=True))
    reward = (1.0 if success else 0.0) if reward is None else reward
    return Episode(task_id="cancel-1", messages=(), steps=tuple(steps), reward=reward, success=success,
                   info={"label": label})  # fmt: skip


GUD = call(
    "get_user_details", user_id=USER_ID, output=f'{{"user_id": "{USER_ID}", "reservations": ["{RES_ID}"]}}'
)
GRD = call(
    "get_reservation_details", reservation_id=RES_ID, output=f'{{"flights": ["{FLIGHT}"], "total": 1234.5}}'
)
CANCEL = call("cancel_reservation", write=True, reservation_id=RES_ID, reason="change_of_plan",
              output=f'{{"status": "cancelled", "refund": "{REFUND}"}}')  # fmt: skip
UPDATE_ERR = call("update_reservation_flights", error=True, write=True, reservation_id=RES_ID,
                  flights=[FLIGHT], output="Error: cabin not available")  # fmt: skip
GRD_ERR = call("get_reservation_details", error=True, reservation_id=WRONG_RES_ID, output="Error: not found")


def cancel_episodes() -> list[Episode]:
    return [
        episode("A", True, [GUD, GRD, CANCEL], ANSWER),
        episode("B", True, [GRD, CANCEL], ANSWER),
        episode("C", False, [GUD, GRD], "I am sorry, I cannot cancel this reservation."),
        episode("D", False, [GUD, UPDATE_ERR], "Your flight could not be changed."),
        episode("E", False, [GRD_ERR], f"Reservation {WRONG_RES_ID} was not found."),
    ]


def as_group(episodes: list[Episode], token_ids: list[list[int]] | None = None,
             prompt_ids: tuple[int, ...] = ()) -> TrajectoryGroup:  # fmt: skip
    """A TrajectoryGroup of these episodes (token arrays empty unless given; all positions action tokens)."""
    trajs = []
    for i, ep in enumerate(episodes):
        ids = tuple(token_ids[i]) if token_ids else ()
        n = len(ids)
        trajs.append(Trajectory(ep, prompt_ids, ids, (1,) * n, (0,) * n, (0.0,) * n, group_id=i))
    prompt = Observation(
        messages=(Message("system", "You are an airline agent."), Message("user", "Hi, I need to cancel.")),
        tools=TOOLS,
    )
    return TrajectoryGroup("cancel-1", tuple(trajs), prompt, instruction=INSTRUCTION)


def cancel_group() -> TrajectoryGroup:
    return as_group(cancel_episodes())
