from searchcore.cli import main_exit

main_exit()
