"""Live mode without Slicer: the procedure journal (``journal``) and its replay (``replay``), the
scanner-bridge and cryo-console conventions as typed events (``console``), the links that join
them for a polling GUI (``link``), and simulators of both peers for tests and demos
(``simulator``); the live solver session (``mode``), a monitoring run and the replay of its journal
(``runner``), the synthetic procedure of ``cryoablation simulate-scanner`` (``synthetic``). The
mapping onto a Slicer scene (``scene_link``) needs the ``slicer`` module and is imported only
where there is one."""
