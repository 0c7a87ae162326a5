"""The daily update that runs by itself: cron times (`cron`), claims that make each time run
once (`book`), what a run does (`update`), and the loop in the supervisor (`scheduler`)."""
