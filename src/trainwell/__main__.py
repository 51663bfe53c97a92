from trainwell.cli import run

run()
