"""napari-cellcount: napari widgets over libcellcount (through the `cellcount` Python binding).

Widgets: one per counting method (generic over the library's method list and model descriptions), a
training widget, and a counts table dock that exports CSV. Sample data: the checkout's samples/."""
__version__ = "0.1.0"

from ._train_widget import TrainWidget
from ._widget import CountWidget

__all__ = ["CountWidget", "TrainWidget"]
