print("1..0 # todo")
