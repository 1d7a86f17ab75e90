"""Views: plotly figure builders (`image_figures`, `method_figures`), captum attributions
(`attribution`), one neuron's view (`neuron_view`) and the exported report and card (`export`)."""
