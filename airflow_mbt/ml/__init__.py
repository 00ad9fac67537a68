"""Framework-independent ML logic: label schema, preprocessing, feature contract, custom
transforms, metrics, validation criteria, plots and scoring with a model directory."""
