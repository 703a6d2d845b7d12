"""Live mode without Slicer: the procedure journal (``journal``) and its replay (``replay``), the
scanner-bridge and cryo-console conventions as typed events (``console``), the links that join
them for a polling GUI (``link``), and simulators of both peers for tests and demos
(``simulator``)."""
