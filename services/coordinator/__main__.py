"""`python -m services.coordinator`"""

from services.coordinator.app import main

if __name__ == "__main__":
    main()
