from keepwell.cli import app

app(prog_name="keepwell")
