"""RTE open data: France's national consumption (éCO2mix) and Tempo day colours from the ODRE
portal (OpenDataSoft Explore API v2.1), into bank datasets usable as features (docs/rte.md)."""
