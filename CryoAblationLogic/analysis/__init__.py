"""What a simulated temperature field means for the plan: target coverage, margins, critical
structures and probe placement checks. No Slicer."""
