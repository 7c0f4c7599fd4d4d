"""Counting what would make the host wait for a GPU, on any device (the tests run on the CPU)."""

from typing import Any

from torch.utils._python_dispatch import TorchDispatchMode


class HostReads(TorchDispatchMode):
    """Counts the operations that make the host wait for the device on a GPU: reading a number out
    (.item(), float(), bool() of a tensor: aten._local_scalar_dense), the data-dependent ones, and a tensor
    made from Python numbers (torch.tensor, new_tensor: aten.lift_fresh, a copy from the host)."""

    WAITING = frozenset(
        {"_local_scalar_dense", "nonzero", "is_nonzero", "equal", "unique", "masked_select", "lift_fresh"}
    )

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.reads += func.overloadpacket.__name__ in self.WAITING
        return func(*args, **(kwargs or {}))
