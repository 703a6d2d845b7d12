"""The record's one jinja2 template: rendered once for the HTML page and once (``pdf`` true) for
the PDF, where xhtml2pdf needs page rules, a Unicode font and simpler layout."""

RECORD_TEMPLATE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{{ title }}</title>
<style>
{% if pdf %}
@font-face { font-family: "DejaVu Sans"; src: url("{{ font_regular }}"); }
@font-face { font-family: "DejaVu Sans"; src: url("{{ font_bold }}"); font-weight: bold; }
@page { size: a4 portrait; margin: 1.5cm 1.3cm 1.6cm 1.3cm;
        @frame footer { -pdf-frame-content: footer; bottom: 0.6cm; margin-left: 1.3cm; margin-right: 1.3cm; height: 1.0cm; } }
body { font-family: "DejaVu Sans"; font-size: 8.5pt; color: #222; }
img.slice { width: 8.6cm; } img.chart { width: 8.6cm; }
table.pictures td { border: none; padding: 2px; font-size: 7.5pt; color: #555; width: 50%; }
{% else %}
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 1200px; color: #222; font-size: 14px; }
img.slice, img.chart { width: 540px; max-width: 48%; } img.view3d { width: 600px; max-width: 60%; }
figure { display: inline-block; margin: 4px 8px 10px 0; vertical-align: top; }
figcaption { font-size: 90%; color: #555; max-width: 540px; }
{% endif %}
h1 { font-size: 18pt; margin-bottom: 2px; } h2 { font-size: 12.5pt; border-bottom: 1px solid #bbb; margin-top: 16px; padding-bottom: 2px; }
.research { background: #fff4e0; border-left: 4px solid #f0a020; padding: 5px 8px; }
table { border-collapse: collapse; margin: 5px 0 8px 0; }
td, th { border: 1px solid #bbb; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #eef2f6; } td.num { text-align: right; }
tr.critical td { background: #f9d0d0; } tr.high td { background: #fde3c8; }
tr.medium td { background: #fff3c4; }
td.rule { font-size: 85%; } tr.note td { background: #f2f2f2; }
.meta td { border: none; padding: 1px 10px 1px 0; }
.signoff td { height: 26px; min-width: 150px; }
.ok { color: #006000; }
</style></head><body>
{% if pdf %}<div id="footer">{{ case_id }} — CryoAblation {{ version }} — page <pdf:pagenumber> of <pdf:pagecount></div>{% endif %}
<h1>{{ title }}</h1>
<table class="meta">
<tr><td><b>Case</b></td><td>{{ case_id }}</td><td><b>Generated</b></td><td>{{ generated }}</td></tr>
<tr><td><b>Kind</b></td><td>{{ kind }}</td><td><b>Software</b></td><td>CryoAblation {{ version }}</td></tr>
</table>
<p class="research"><b>Research software, not a medical device.</b> {{ research_note }}</p>

<h2>Warnings, most severe first</h2>
{% if warnings %}
<table><tr><th width="10%">Severity</th><th width="24%">Rule</th><th width="10%">Structure</th><th width="9%">Value</th><th width="10%">Threshold</th><th width="37%">Finding</th></tr>
{% for w in warnings %}<tr class="{{ w.severity }}"><td>{{ w.severity }}</td><td class="rule">{{ w.rule }}</td><td>{{ w.structure }}</td>
<td class="num">{{ w.value_text }}</td><td class="num">{{ w.threshold_text }}</td><td>{{ w.message }}</td></tr>
{% endfor %}</table>
{% else %}<p class="ok">No warnings.</p>{% endif %}

<h2>Target coverage and margins (lowest temperature reached)</h2>
<p>{{ volume_sentence }}</p>
<table><tr>{% for title in isotherm_columns %}<th>{{ title }}</th>{% endfor %}</tr>
{% for row in isotherm_rows %}<tr>{% for cell in row %}<td class="num">{{ cell }}</td>{% endfor %}</tr>{% endfor %}
</table>
{% if structure_rows %}
<h2>Critical structures</h2>
<table><tr><th>Structure</th><th>Type</th><th>Lowest temperature (°C)</th><th>Distance to 0 °C (mm)</th><th>Safety margin (mm)</th><th>Reached by ice</th></tr>
{% for row in structure_rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}
</table>
{% endif %}

{% if protection_rows %}
<h2>Thermal protection</h2>
<table><tr><th>Measure</th><th>Name</th><th>Where</th><th>Warming (°C or W/ml)</th></tr>
{% for row in protection_rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}
</table>
{% if protection_nearby_rows %}
<p>Critical structures within {{ protection_near_mm }} mm of a measure, with the lowest temperature each reached:</p>
<table><tr><th>Measure</th><th>Critical structure</th><th>Distance (mm)</th><th>Lowest temperature (°C)</th></tr>
{% for row in protection_nearby_rows %}<tr><td>{{ row[0] }}</td><td>{{ row[1] }}</td><td class="num">{{ row[2] }}</td><td class="num">{{ row[3] }}</td></tr>{% endfor %}
</table>
{% else %}<p>No critical structure lies within {{ protection_near_mm }} mm of a measure.</p>{% endif %}
{% endif %}

<h2>Pictures</h2>
<p>Lowest temperature each voxel reached, as a colour wash (°C, the colours of Slicer's temperature volumes) with the isotherms outlined; target, critical structures and vessels outlined{% if protection_rows %}, thermal protection dotted in magenta{% endif %}; probes solid within 2 mm of the slice, dashed beyond; 10 mm scale bar.</p>
{% if pdf %}
<table class="pictures">{% for row in (slice_pictures + [view3d])|batch(2) %}<tr>{% for picture in row %}<td><img class="slice" src="{{ picture.uri }}"><br>{{ picture.caption }}</td>{% endfor %}</tr>{% endfor %}</table>
{% else %}
{% for picture in slice_pictures %}<figure><img class="slice" src="{{ picture.uri }}" alt="{{ picture.caption }}"><figcaption>{{ picture.caption }}</figcaption></figure>
{% endfor %}<figure><img class="view3d" src="{{ view3d.uri }}" alt="{{ view3d.caption }}"><figcaption>{{ view3d.caption }}</figcaption></figure>
{% endif %}

<h2>Over time</h2>
{% if pdf %}
<table class="pictures">{% for row in charts|batch(2) %}<tr>{% for picture in row %}<td><img class="chart" src="{{ picture.uri }}"><br>{{ picture.caption }}</td>{% endfor %}</tr>{% endfor %}</table>
{% else %}
{% for picture in charts %}<figure><img class="chart" src="{{ picture.uri }}" alt="{{ picture.caption }}"><figcaption>{{ picture.caption }}</figcaption></figure>
{% endfor %}
{% endif %}
{% if events %}
<h2>Procedure events</h2>
<table><tr><th>Time (min:s)</th><th>Event</th></tr>
{% for event in events %}<tr><td class="num">{{ event.time }}</td><td>{{ event.text }}</td></tr>{% endfor %}
</table>
{% endif %}
{% if observed_rows %}
<h2>Observed vs predicted</h2>
<table><tr><th>Sensor</th><th>Readings</th><th>Mean difference (°C)</th><th>Largest difference (°C)</th></tr>
{% for row in observed_rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}
</table>
{% endif %}

<h2>Plan</h2>
<table><tr><th>Probe</th><th>Model</th><th>Tip (RAS mm)</th><th>Entry (RAS mm)</th><th>Active length (mm)</th><th>Diameter (mm)</th></tr>
{% for row in probe_rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}
</table>
<table><tr><th>Step</th><th>Start (min:s)</th><th>Duration (min:s)</th><th>Action</th><th>Probes</th></tr>
{% for row in protocol_rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}
</table>
<table><tr><th>Setting</th><th>Value</th></tr>
{% for name, value in settings %}<tr><td>{{ name }}</td><td>{{ value }}</td></tr>{% endfor %}
</table>
<p>Safety rules: {{ rules_text }}</p>

<h2>Review and sign-off</h2>
<table class="signoff">
<tr><th>Role</th><th>Name</th><th>Date</th><th>Signature</th></tr>
<tr><td>Planned by</td><td></td><td></td><td></td></tr>
<tr><td>Reviewed by (radiologist)</td><td></td><td></td><td></td></tr>
<tr><td>Physicist / engineer</td><td></td><td></td><td></td></tr>
</table>
<table class="signoff"><tr><th>Comments</th></tr><tr><td style="height: 70px"></td></tr></table>
</body></html>
"""  # noqa: E501 - HTML lines
